"""A `telefonica` app like the CRM's, so the companion's defaults apply unchanged."""
