"""Application services: load state, call the domain, persist, carry out effects, one transaction each."""
