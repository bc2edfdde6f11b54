"""`{% url_descarga_confronta venta %}`: the download view's URL for a venta, for the fragments."""

from django import template
from django.urls import reverse

from .. import conf

register = template.Library()


@register.simple_tag
def url_descarga_confronta(venta):
    """The download view's URL for `venta` (CONFRONTA_SYNC_DESCARGA_URL, by default
    telefonica:descargar_confronta)."""
    return reverse(conf.descarga_url_name(), args=[venta.pk])
