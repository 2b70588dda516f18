"""The docker-simulated platform: node images, topologies and their lifecycle."""
