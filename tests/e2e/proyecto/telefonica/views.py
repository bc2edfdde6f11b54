import time

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from .forms import VentaCorregirForm, VentaForm
from .models import VentaPortabilidad


def _marcar_subida(response, request, venta):
    # Test-only headers: which of Django's upload paths took the file, and where it was saved.
    archivo = request.FILES.get("confronta")
    if archivo is not None:
        response["X-E2E-Upload-Class"] = type(archivo).__name__
        response["X-E2E-Confronta"] = venta.confronta.name
    response["X-E2E-Venta"] = str(venta.pk)
    return response


def _commit_lento(request, response, venta):
    """Test-only: a slow view. With `espera` in the POST, sleeps that many seconds after the
    venta (and its file) was saved, inside the request's transaction (ATOMIC_REQUESTS), then
    says whether its file was still on disk just before the row commits."""
    espera = float(request.POST.get("espera") or 0)
    if espera > 0:
        time.sleep(espera)
        if venta.confronta:
            presente = venta.confronta.storage.exists(venta.confronta.name)
            response["X-E2E-Archivo-Antes-Del-Commit"] = "presente" if presente else "ausente"
    return response


@login_required
def venta_nueva(request):
    if request.method == "POST":
        form = VentaForm(request.POST, request.FILES)
        if form.is_valid():
            venta = form.save(commit=False)
            venta.agente = request.user
            venta.save()
            messages.success(request, f"Venta {venta.numero} registrada.")
            destino = redirect("telefonica:detalle_venta_portabilidad", pk=venta.pk)
            return _commit_lento(request, _marcar_subida(destino, request, venta), venta)
    else:
        form = VentaForm()
    return render(request, "telefonica/venta_nueva.html", {"form": form})


@login_required
def detalle_venta_portabilidad(request, pk):
    venta = get_object_or_404(VentaPortabilidad, pk=pk)
    return render(request, "telefonica/venta_detalle.html", {"venta": venta})


@login_required
def venta_corregir(request, pk):
    venta = get_object_or_404(VentaPortabilidad, pk=pk)
    if request.method == "POST":
        form = VentaCorregirForm(request.POST, request.FILES, instance=venta)
        if form.is_valid():
            venta = form.save(commit=False)
            venta.estado_venta = "pendiente_revision"
            # A new confronta: the mixin's save() marks it for upload (subido = False) and keeps
            # the old object name, which the sidecar replaces and then deletes.
            venta.save()
            messages.success(request, f"Venta {venta.numero} corregida.")
            destino = redirect("telefonica:detalle_venta_portabilidad", pk=venta.pk)
            return _commit_lento(request, _marcar_subida(destino, request, venta), venta)
    else:
        form = VentaCorregirForm(instance=venta)
    return render(request, "telefonica/venta_corregir.html", {"venta": venta, "form": form})
