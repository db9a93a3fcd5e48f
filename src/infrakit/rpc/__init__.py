"""JSON-RPC 2.0 over HTTP on unix sockets: envelopes, server, clients, discovery."""
