"""fridgebench: settle PostgreSQL vs Redis for fridge2fork sessions with measurements, then migrate."""

__version__ = "0.1.0"
