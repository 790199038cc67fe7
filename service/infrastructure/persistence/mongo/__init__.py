"""MongoDB persistence, written once for Motor and for PyMongo's AsyncMongoClient."""
