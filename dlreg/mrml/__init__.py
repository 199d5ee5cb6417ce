"""MRML adapters: Slicer scene nodes <-> the core's SimpleITK images and matrices.

Needs Slicer's MRML (the application, or the `slicer-core` wheel), never Qt.
World coordinates in MRML are RAS; the core is LPS: conversion happens here.
"""
