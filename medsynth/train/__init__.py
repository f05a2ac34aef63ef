"""Train: fine-tune small encoders (NER token tagging, RE pair classification, spaCy) and predict with them."""
