# One image for every service of docker-compose.yml: Airflow (scheduler, API, DAG
# processor, triggerer), the Spark master and workers (same pyspark 4.2.0 and the
# same Python, so PySpark workers match the driver).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps git make \
 && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17 \
 && rm -rf /var/lib/apt/lists/*
# JAVA_HOME through a link, right on arm64 hosts too (spark-class runs $JAVA_HOME/bin/java). /opt/venv/bin first: pip
# installs pyspark's spark-class and spark-submit there, and they find SPARK_HOME with that python3.
ENV JAVA_HOME=/usr/lib/jvm/java-17 \
    PATH=/opt/venv/bin:$PATH \
    RECSYS_HOME=/data
WORKDIR /opt/recsys
COPY requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir -r requirements.lock
COPY . .
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps -e .
