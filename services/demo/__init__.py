"""A synthetic plant (pumps and turbines) for demos, notebooks and load benchmarks."""
