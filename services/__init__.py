"""The four services of Kagibag Contacts, plus the operational CLI that composes them."""
