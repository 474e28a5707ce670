"""The token-issuing authorization server: a later issue.

It will have its own app factory and follow the gateway's conventions (typed errors mapped in
one place, pydantic config compiled to immutable objects, metrics in one module). Nothing
here yet; the package exists so the layout is settled.
"""
