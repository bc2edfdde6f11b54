from django import forms

from .models import VentaPortabilidad


class VentaForm(forms.ModelForm):
    class Meta:
        model = VentaPortabilidad
        fields = ["cliente", "confronta"]


class VentaCorregirForm(forms.ModelForm):
    class Meta:
        model = VentaPortabilidad
        fields = ["cliente", "confronta"]
