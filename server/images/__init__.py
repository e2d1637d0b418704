"""Images of a request: `decoding` (bytes and data: URLs, limits; pure), `remote` (http(s) URLs
under an SSRF policy), `urls` (which of the two an image URL takes)."""
