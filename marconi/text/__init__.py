"""Words for image search: the ImageNet vocabulary, WordNet's broader words, and GloVe word vectors.

- :mod:`marconi.text.vocabulary`: the 1,000 ImageNet-1k classes in classifier order (names, definitions, broader
  words from WordNet hypernyms), read from the timm wheel's class files and Debian's WordNet.
- :mod:`marconi.text.wordnet`: WordNet 3.0 nouns read straight from ``data.noun`` (hypernym pointers by offset).
- :mod:`marconi.text.words`: GloVe 6B 50-d word vectors: nearest words, query words.
- :mod:`marconi.text.query`: a text query as weights over the classes (WordNet senses + sentence vectors).

Sentence vectors (all-MiniLM-L6-v2) are an encoder: :mod:`marconi.encoders.text`. Nothing here touches a database
or the network.
"""
