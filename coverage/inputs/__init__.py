"""Inputs: files, tables, coordinate systems, checked layers and urban/rural classes.

This layer reads and checks what a user gives; it never imports the engine or the standards.
"""
