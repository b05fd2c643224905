"""Kino's denoiser engine: step-level continuous batching with priorities and deadlines.

`scheduler.StepScheduler` decides (pure Python), `executor.ModelExecutor` runs the model, and
`engine.DenoiseEngine` loops between them; `plan` holds the dataclasses at their seams.
"""
