"""The protocol inspector: watch a broker and explain every message against the dispenser protocol.

For firmware developers pointing a device at a broker, and for operators debugging one device.
"""
