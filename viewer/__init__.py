"""Lightbox: a DICOM workstation for the desktop.

The core (``model``, ``imaging``, ``media``, ``store``, ``net``) and ``cli`` import no Qt;
``viewer.qt`` is the only package that does.
"""

__version__ = "0.1.0"
