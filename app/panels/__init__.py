"""Pipeline forms (features → train → cluster → separate → export) and the controller of their results."""
