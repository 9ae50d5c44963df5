"""References for lesson 01 (values and function cases the grader computes itself)."""

from __future__ import annotations

from grader.references import reference


@reference("colors_help")
def _colors_help(ctx, color_model, model) -> bool:
    """Whether the colour MLP beats the grayscale one on this mode's test split.

    Both accuracies are computed here, from the exported models: ``color_model`` on flattened
    RGB vectors (3,072 values), ``model`` on flattened grayscale vectors (1,024 values).
    """
    from grader.checks import _require_model, model_accuracy

    color = model_accuracy(_require_model(color_model, "color_model"), ctx, inputs="flat")
    gray = model_accuracy(_require_model(model, "model"), ctx, inputs="gray_flat")
    return bool(color > gray)
