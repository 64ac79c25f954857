"""WebRTC and asyncio plumbing both ends of a call share."""
