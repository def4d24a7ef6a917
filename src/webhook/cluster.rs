//! Cluster mode: reflector-store context, certificates in a Secret, caBundle patching.
