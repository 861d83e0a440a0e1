"""The lab host process: the one stateful process of the playground (`manage.py runlabs`).

Everything here runs in that process only, and imports no Django: `host` runs the labs,
`limits` says how many and for how long. The web tier never imports this package; it
talks to the host over the Channels layer through `playground.labclient`, and both sides
share the message contract in `playground.labprotocol`. Labs never live in a web process:
the web tier holds no lab state.
"""
