"""The IdP's HTTP endpoints, one module each, mounted from the route table (`.._routes`).

Each endpoint takes the narrow context its Protocol in `_context` names and the request; none
reads or writes another object's private state.
"""
