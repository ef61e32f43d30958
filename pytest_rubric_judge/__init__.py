"""pytest-rubric-judge: regression assertions for LLM applications.

A judge model writes a rubric for each prompt, scores two responses on every criterion in
both slot orders, and says which is better; verdicts that flip with the order are refused.
"""
