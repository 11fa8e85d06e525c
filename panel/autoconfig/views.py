"""Answer mail clients asking how to connect; they reveal no mailbox, only a domain's servers."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from mailcore import clientconfig
from mailcore.addresses import normalize_address

XML = "application/xml; charset=utf-8"


@require_GET
def autoconfig(request: HttpRequest) -> HttpResponse:
    # Thunderbird asks autoconfig.DOMAIN, usually with ?emailaddress=; either names the domain.
    address = request.GET.get("emailaddress", "")
    if not address and getattr(request, "client_setup_domain", None):
        # Asked on autoconfig.DOMAIN (panel.hosts found DOMAIN hosted here).
        address = "user@" + request.client_setup_domain
    domain = clientconfig.hosted_domain_for(address) if address else None
    if domain is None:
        raise Http404("No such domain here")
    return HttpResponse(clientconfig.autoconfig_xml(domain), content_type=XML)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def autodiscover(request: HttpRequest) -> HttpResponse:
    # Outlook POSTs an XML request naming the address; a GET is a probe.
    address = clientconfig.autodiscover_address(request.body) if request.method == "POST" else None
    if not address or clientconfig.hosted_domain_for(address) is None:
        return HttpResponse(clientconfig.autodiscover_error_xml(), content_type=XML)
    return HttpResponse(clientconfig.autodiscover_xml(normalize_address(address)), content_type=XML)
