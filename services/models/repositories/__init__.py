"""The registry's repositories, one per aggregate; `services/models/repository.py` puts them
together."""
