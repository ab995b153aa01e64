"""MirrorMaker 2 interop: Java .properties files, mm2.properties import/export, connector configs."""
