"""Kino's services: text encoding, video denoising, audio, feed ranking and the Generation job API."""
