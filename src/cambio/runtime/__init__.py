"""The runtime around the engine: engine hosts, the sequencer loop, recovery, the service."""
