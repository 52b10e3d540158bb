"""Test doubles that run on 127.0.0.1."""
