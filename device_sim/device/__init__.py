"""The simulated dispenser: a sans-I/O state machine (``Dispenser``) and its parts."""
