"""Level 9, the course platforms: Canvas (the zip intake, the REST pull and push, its late
policy and states, the gradebook CSV and roster matching) and Gradescope (the autograder zip,
its uploads and ``results.json``). The batch (:mod:`grader.classroom`) never imports it."""
