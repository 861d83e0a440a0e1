"""The lab host: the one stateful process of the playground, and the web tier's view of it.

`host` runs labs (`manage.py runlabs`); `protocol` is the message contract between the web
tier and the host; `client` is what views and consumers call. Labs never live in a web
process: the web tier holds no lab state.
"""
