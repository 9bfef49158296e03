"""Waveform input: read files with ObsPy, build 3-component records, remove responses, rotate."""

from unmix.io.read import expand_inputs, read_file, read_stream
from unmix.io.record import GAP_POLICIES, Interruption, Record, build_records, read_record, read_records
from unmix.io.response import read_inventory, remove_response, rotate_to_zne

__all__ = [
    "GAP_POLICIES",
    "Interruption",
    "Record",
    "build_records",
    "expand_inputs",
    "read_file",
    "read_inventory",
    "read_record",
    "read_records",
    "read_stream",
    "remove_response",
    "rotate_to_zne",
]
