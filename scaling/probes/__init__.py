"""Inside the models: embedding-space neighbours, linear probes, organisation, kernels and atlases.

`probe_run(run_dir)` measures one trained run and writes probe_* metrics into its record.json
(so they join the run table) and PNGs into <run_dir>/probes/; `probe_sweep(sweep_dir)` does it
for every completed run of a sweep and draws the ladder side by side.
"""

from scaling.probes.runner import ProbeError, probe_finished, probe_run, probe_sweep

__all__ = ["ProbeError", "probe_finished", "probe_run", "probe_sweep"]
