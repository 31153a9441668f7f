"""Loopback doubles of the services the tests talk to: the moto S3 server and the Hub double."""
