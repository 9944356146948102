"""The road engine: travel modes, road networks, snapping, routing, isochrones, the facade.

The engine answers travel-time questions; it never imports the standards it is used to judge.
"""
