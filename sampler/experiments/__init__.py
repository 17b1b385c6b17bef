"""Experiments that users run and log: sweep configs and the resumable sweep."""
