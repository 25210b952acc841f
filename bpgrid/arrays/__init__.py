"""Fused cell arrays: cells that differ only in numbers train together as one batched model."""
