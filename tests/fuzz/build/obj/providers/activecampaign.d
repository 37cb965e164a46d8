build/obj/providers/activecampaign.o: ../../providers/activecampaign.c \
  ../../providers/buf.h ../../providers/json.h \
  ../../providers/provider.h ../../providers/conf.h \
  ../../providers/http.h ../../providers/secret.h

../../providers/buf.h:

../../providers/json.h:

../../providers/provider.h:

../../providers/conf.h:

../../providers/http.h:

../../providers/secret.h:
