"""The surrogate world: synthetic skills, a character tokenizer, tiny Llama zoos built and trained here.

Each skill stands for one benchmark of the paper (see ``skills.py``); each surrogate zoo plants the
structure of the real Which-N zoos (a pretrained base, gentle fine-tunes with different skill mixes,
a harmful fine-tune, a drifted family, a model of another architecture).
"""
