"""Diffusion models for inverse problems: VP noise schedules, the DEIS scheduler, exact-score test
distributions and the helpers the diffusion solvers (`dds`, `ddim`, `dps`, `deis`) share."""
