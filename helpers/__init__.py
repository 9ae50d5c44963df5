"""Shared helpers for the dlcourse lesson notebooks.

``helpers.data`` loads and prepares the datasets, ``helpers.plotting`` draws the figures,
``helpers.training`` holds seeding, fast mode and small Keras callbacks, ``helpers.transfer``
the optional transfer-learning cells of lesson 04. Importing this
package is cheap: TensorFlow/Keras are only imported by the functions that need them.
"""

__all__ = ["data", "plotting", "training", "transfer"]
