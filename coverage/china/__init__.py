"""Chinese districts: NBS codes and names, data fetch, approximate polygons, dasymetry.

Modules
-------
names
    Normalising Chinese administrative names (suffix variants) for matching.
nbs
    The shipped National Bureau of Statistics tables: counties, townships, villages, the
    urban-rural code, and joining a user's table to them by code or name.
fetch
    ``covplan data fetch``: download an OpenStreetMap extract, cut it to a district and write a
    ready scenario.
approximate
    Voronoi township polygons when the real ones are not mapped.
dasymetric
    Spreading census counts over a population raster inside each unit.
"""
