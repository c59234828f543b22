"""The pure core: standard library only, no clock, no ids, no I/O. Inputs in, decisions out."""
