"""The client's side of Documentos (Pendências, Documentos recentes, Enviar ao escritório)."""
