"""The pure core of syncline: version vectors, record state, the fold and conflict policies.

Nothing here does I/O, reads a clock or draws randomness: time, actors and ids are arguments.
"""
