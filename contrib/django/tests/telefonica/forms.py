"""A form as a CRM may write one: every editable field of the venta."""

from django import forms

from .models import VentaPortabilidad


class VentaTodoForm(forms.ModelForm):
    class Meta:
        model = VentaPortabilidad
        fields = "__all__"
