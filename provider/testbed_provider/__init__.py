"""pulumi-testbed's native Pulumi provider: `testbed` resources for distributed-systems experiments."""

# Kept equal to schema.json's "version" (a test checks it): the engine asks for exactly the
# version the generated SDK declares.
__version__ = "0.1.0"
