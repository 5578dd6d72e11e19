"""``python -m laifaxin_classifier``: run the classifier service."""

from laifaxin_classifier.service import main

main()
