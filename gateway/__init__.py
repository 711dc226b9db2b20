"""The BentoML gateway in front of Triton: API keys, rate limits, upload checks, cache, history.

``gateway.service:Gateway`` is the BentoML service; ``visionserve gateway`` serves it,
``visionserve keys`` manages API keys and ``visionserve up`` runs it with tritonserver.
"""
