"""The continuous loop inside the server: re-distil the student from logged traffic, promote
it only when it beats the incumbent, keep its serving threshold calibrated.

- `scheduler`: wiring on ``app.state.loop`` and the APScheduler jobs (`start_loop`/`stop_loop`)
- `runs`: `RunManager`, one training subprocess at a time, triggers and outcomes
- `promotion`: load under a new name, check, measure, gate, atomic swap, rollback, restore
- `evaluate`: score a version through vLLM exactly as the proxy serves it
- `lora`: vLLM's runtime LoRA API on every replica
- `calibration` / `calibrator`: threshold math (Wilson lower bound) and its upkeep
- `artifacts`: what a run left on disk; `store`: the `runs` and `student_versions` rows
- `process`: spawning and killing the trainer's process group
"""
