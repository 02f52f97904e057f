"""Launchers: run a list of RunSpecs somewhere (local, ray, slurm) into the same run folders."""
