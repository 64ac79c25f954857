"""Signaling for a call: a websockets server pairing a sender and a receiver per room, and their client."""
